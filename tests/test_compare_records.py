"""benchmarks/compare_records.py: what the recorded-results comparisons in benchmarks/README.md ran."""

from __future__ import annotations

import json

from benchmarks.compare_records import main

HEADER = "arm,seed,round,test_accuracy,steps,seconds,cumulative_seconds\n"


def write(path, text):
    path.write_text(text)
    return str(path)


def test_records_that_differ_only_in_wall_times_agree(tmp_path, capsys):
    old = write(tmp_path / "old.csv", HEADER + "warm,0,0,0.5,10,1.0,1.0\nwarm,0,1,0.6,5,0.5,1.5\n")
    new = write(tmp_path / "new.csv", HEADER + "warm,0,1,0.6,5,0.9,2.9\nwarm,0,0,0.5,10,2.0,2.0\n")
    assert main([old, new]) == 0
    assert "0 difference(s)" in capsys.readouterr().out


def test_a_changed_accuracy_or_a_missing_record_is_a_difference(tmp_path, capsys):
    old = write(tmp_path / "old.csv", HEADER + "warm,0,0,0.5,10,1.0,1.0\n")
    new = write(tmp_path / "new.csv", HEADER + "warm,0,0,0.51,10,1.0,1.0\n")
    assert main([old, new]) == 1
    assert "test_accuracy 0.5 -> 0.51" in capsys.readouterr().out
    short = write(tmp_path / "short.csv", HEADER)
    assert main([old, short]) == 1


def test_json_values_compare_at_full_precision_without_times(tmp_path, capsys):
    old = tmp_path / "a.json"
    new = tmp_path / "b.json"
    old.write_text(json.dumps({"gap": 0.1, "wall_seconds": 3, "rows": [1, 2]}))
    new.write_text(json.dumps({"gap": 0.1, "wall_seconds": 9, "rows": [1, 2]}))
    assert main([str(old), str(new)]) == 0
    new.write_text(json.dumps({"gap": 0.1000000001, "rows": [1, 2], "extra": 1}))
    assert main([str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "/gap: 0.1 -> 0.1000000001" in out and "/extra: only in new" in out


def test_new_arms_and_skipped_arms(tmp_path, capsys):
    old = write(tmp_path / "old.csv", HEADER + "warm,0,0,0.5,10,1.0,1.0\ncbp,0,0,0.4,10,1.0,1.0\n")
    new = write(
        tmp_path / "new.csv",
        HEADER + "warm,0,0,0.5,10,1.0,1.0\ncbp,0,0,0.41,10,1.0,1.0\nl2,0,0,0.3,9,1.0,1.0\n",
    )
    assert main([old, new]) == 1  # one record more
    assert main([old, new, "--old-arms"]) == 1  # cbp changed
    assert main([old, new, "--old-arms", "--skip-arm", "cbp"]) == 0
    out = capsys.readouterr().out
    assert "arms only in" in out and "l2" in out and "0 difference(s)" in out
