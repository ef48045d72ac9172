"""An example activews plugin package.

Nothing is imported here: activews imports :mod:`activews_plugin_example.strategy` or
:mod:`activews_plugin_example.acquisition` (through the entry points in ``pyproject.toml``) only when
``norm_to_init`` or ``stochastic_power`` is first asked for.
"""

__version__ = "0.1.0"
