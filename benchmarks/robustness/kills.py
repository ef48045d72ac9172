"""Stop runs the way users and machines do, resume them, and check the numbers (see docs/running.md).

    python benchmarks/robustness/kills.py            # every trial below (about 10 minutes on 2 quiet cores)
    python benchmarks/robustness/kills.py --quick    # a few of each

Every trial runs a tiny bench (1,000 MNIST-1D examples, 100 + 100 per round, 3 rounds, 2 seeds: 18
rounds of random, warm and shrink_perturb) in its own process group, stops it, resumes it with
``activews bench --resume`` and compares every record field but wall times with an uninterrupted run;
the store must pass ``PRAGMA integrity_check``.

- ``kill9_serial``: ``kill -9`` of a serial run after a random delay.
- ``kill9_parent_w2``: ``kill -9`` of the parent of a ``--workers 2`` run alone; no process of the run
  may run 10 s later, and none may write to the store after 1 s.
- ``ctrl_c_w2``: SIGINT to the process group of a ``--workers 2`` run (Ctrl-C in a terminal); every
  process must be gone within 5 s, with exit code 130, one message and no traceback.
- ``term_parent_w2``: SIGTERM to the parent alone (``kill PID``, a container stop); exit 143 and one message.
- ``garbled_checkpoint``: ``kill -9`` of a serial run, then 64 random bytes written over the middle of
  every newest checkpoint left in the folder (in about half the trials, over the previous generation
  too), then resume.
- ``race``: two runs started at the same instant on one new folder: exactly one runs, the other exits
  2 with one line.
- ``chain``: one run killed with ``kill -9`` again and again, at random moments, until a resume finishes.

The delays come from a seeded generator, so the plan is the same on every run; where the kills land
depends on the machine's speed. Results go to ``benchmarks/robustness/results/kills.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLAGS = "--n-examples 1000 --rounds 3 --initial 100 --query-size 100 --seeds 2 --no-plot".split()
TOTAL = 18
TIMING = {"seconds", "init_seconds", "select_seconds", "cumulative_seconds"}


def bench(folder: Path, *extra: str, quiet: bool = True) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "activews", "bench", *FLAGS, "--output", str(folder), *extra]
        + (["--quiet"] if quiet else ["--progress", "plain"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def resume(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "activews", "bench", "--resume", str(folder), "--quiet", "--no-plot"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def stored(folder: Path) -> int:
    """Rounds committed to the run's store so far (0 before it exists)."""
    try:
        conn = sqlite3.connect(f"file:{folder / 'store.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def integrity(folder: Path) -> str:
    conn = sqlite3.connect(folder / "store.sqlite")
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def live(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that still run (zombies waiting for their reaper left out)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def gone_after(pgid: int, limit: float = 30.0) -> float:
    start = time.monotonic()
    while live(pgid) and time.monotonic() - start < limit:
        time.sleep(0.05)
    return time.monotonic() - start


def records(folder: Path) -> dict:
    rows = json.loads((folder / "records.json").read_text())
    return {
        f"{r['arm']}/{r['seed']}/{r['round']}": {k: v for k, v in r.items() if k not in TIMING} for r in rows
    }


def wait_rounds(proc: subprocess.Popen, folder: Path, n: int) -> None:
    while stored(folder) < n and proc.poll() is None:
        time.sleep(0.02)


def check_resume(folder: Path, reference: dict) -> dict:
    done = resume(folder)
    ok = done.returncode == 0 and records(folder) == reference
    return {"resumed_identical": ok, "integrity": integrity(folder), "resume_stderr": done.stderr[-300:]}


def one_line(err: str) -> bool:
    return "Traceback" not in err and len(err.strip().splitlines()) == 1


def trial_kill9_serial(folder: Path, rng: random.Random, reference: dict) -> dict:
    proc = bench(folder)
    time.sleep(rng.uniform(2.0, 7.0))
    proc.kill()
    proc.communicate()
    return {"stored_at_kill": stored(folder)} | check_resume(folder, reference)


def trial_kill9_parent_w2(folder: Path, rng: random.Random, reference: dict) -> dict:
    proc = bench(folder, "--workers", "2")
    wait_rounds(proc, folder, rng.randint(1, TOTAL - 4))
    start = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()  # returns once every process holding the run's output pipes has ended
    gone_after(proc.pid)
    gone = time.monotonic() - start
    before = stored(folder)
    time.sleep(1.0)
    return {
        "stored_at_kill": before,
        "all_gone_s": round(gone, 2),
        "no_write_after_1s": stored(folder) == before,
        "ok_time": gone < 10.0,
    } | check_resume(folder, reference)


def _signal_group_trial(folder: Path, rng: random.Random, reference: dict, sig: int, group: bool) -> dict:
    proc = bench(folder, "--workers", "2", quiet=False)
    wait_rounds(proc, folder, rng.randint(1, TOTAL - 4))
    at = stored(folder)
    start = time.monotonic()
    (os.killpg if group else os.kill)(proc.pid, sig)
    _, err = proc.communicate()
    gone = gone_after(proc.pid)
    gone_total = time.monotonic() - start
    message = err.strip().splitlines()[-1] if err.strip() else ""
    return {
        "stored_at_signal": at,
        "stored_after": stored(folder),
        "exit_code": proc.returncode,
        "all_gone_s": round(gone_total, 2),
        "ok_time": gone_total < (5.0 if sig == signal.SIGINT else 10.0) and gone < 30,
        "traceback": "Traceback" in err,
        "message": message,
    } | check_resume(folder, reference)


def trial_ctrl_c_w2(folder: Path, rng: random.Random, reference: dict) -> dict:
    return _signal_group_trial(folder, rng, reference, signal.SIGINT, group=True)


def trial_term_parent_w2(folder: Path, rng: random.Random, reference: dict) -> dict:
    return _signal_group_trial(folder, rng, reference, signal.SIGTERM, group=False)


def trial_garbled_checkpoint(folder: Path, rng: random.Random, reference: dict) -> dict:
    proc = bench(folder)
    wait_rounds(proc, folder, rng.randint(2, TOTAL - 3))
    while proc.poll() is None and not any((folder / "checkpoints").glob("*.pt")):
        time.sleep(0.005)  # between two arms no checkpoint exists: wait for the next one
    proc.kill()
    proc.communicate()
    garbled = []
    both = rng.random() < 0.5  # else the newest generation only: the arm goes on from the previous one
    for ckpt in sorted((folder / "checkpoints").glob("*.pt")):
        if ckpt.name.endswith(".prev.pt") and not both:
            continue
        data = bytearray(ckpt.read_bytes())
        at = len(data) // 2 + rng.randint(-len(data) // 4, len(data) // 4)
        data[at : at + 64] = bytes(rng.getrandbits(8) for _ in range(64))
        ckpt.write_bytes(bytes(data))
        garbled.append(ckpt.name)
    return {"garbled": garbled} | check_resume(folder, reference)


def trial_race(folder: Path, rng: random.Random, reference: dict) -> dict:
    procs = [bench(folder) for _ in range(2)]
    outcomes = [(p.wait(), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in outcomes)
    loser = [err for code, err in outcomes if code == 2]
    return {
        "exit_codes": codes,
        "exactly_one_ran": codes == [0, 2] and one_line(loser[0]) and "in use" in loser[0],
        "loser_message": loser[0].strip() if loser else "",
        "identical": records(folder) == reference,
        "integrity": integrity(folder),
    }


def trial_chain(folder: Path, rng: random.Random, reference: dict, max_kills: int) -> dict:
    kills = 0
    proc = bench(folder)
    while kills < max_kills:
        time.sleep(rng.uniform(1.5, 4.0))
        if proc.poll() is not None:
            break
        proc.kill()
        proc.communicate()
        kills += 1
        proc = subprocess.Popen(  # the same command again resumes
            [sys.executable, "-m", "activews", "bench", "--resume", str(folder), "--quiet", "--no-plot"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    proc.communicate()
    return {"kills": kills} | check_resume(folder, reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two trials of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only",
        action="append",
        metavar="KIND",
        help="run only these kinds of trial (repeatable), "
        "replacing their results in --output and keeping the others",
    )
    parser.add_argument("--output", default=str(HERE / "results" / "kills.json"))
    args = parser.parse_args()
    counts = {
        "kill9_serial": 12,
        "kill9_parent_w2": 5,
        "ctrl_c_w2": 5,
        "term_parent_w2": 3,
        "garbled_checkpoint": 5,
        "race": 3,
    }
    if args.quick:
        counts = dict.fromkeys(counts, 2)
    kinds = [*counts, "chain"]
    unknown = sorted(set(args.only or []) - set(kinds))
    if unknown:
        parser.error(f"--only {', '.join(unknown)}: choose from {', '.join(kinds)}")
    if args.only:
        counts = {k: v for k, v in counts.items() if k in args.only}
    rng = random.Random(args.seed)
    out: dict = {
        "command": " ".join(["python", "benchmarks/robustness/kills.py", *sys.argv[1:]]),
        "trials": {},
    }
    with tempfile.TemporaryDirectory(prefix="activews-kills-") as tmp:
        root = Path(tmp)
        ref = bench(root / "ref")
        ref.communicate()
        reference = records(root / "ref")
        trials = {name: globals()[f"trial_{name}"] for name in counts}
        for name, count in counts.items():
            rows = []
            for k in range(count):
                row = trials[name](root / f"{name}-{k}", rng, reference)
                rows.append(row)
                print(
                    name,
                    k,
                    json.dumps({key: v for key, v in row.items() if key != "resume_stderr"}),
                    flush=True,
                )
            out["trials"][name] = rows
        if not args.only or "chain" in args.only:
            chain = trial_chain(root / "chain", rng, reference, max_kills=20 if args.quick else 60)
            print("chain", json.dumps(chain), flush=True)
            out["trials"]["chain"] = [chain]
    if args.only and Path(args.output).exists():  # keep the other kinds' recorded trials
        previous = json.loads(Path(args.output).read_text())
        out["trials"] = previous["trials"] | out["trials"]
        out["command"] = previous["command"] + " && " + out["command"]
    summary = {}
    for name, rows in out["trials"].items():
        good = sum(
            all(
                row.get(key, True) is True
                for key in (
                    "resumed_identical",
                    "exactly_one_ran",
                    "ok_time",
                    "no_write_after_1s",
                    "identical",
                )
            )
            and row.get("integrity", "ok") == "ok"
            and not row.get("traceback", False)
            for row in rows
        )
        summary[name] = f"{good} of {len(rows)}"
    out["summary"] = summary
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    for name, text in summary.items():
        print(f"{name:<20} {text}")


if __name__ == "__main__":
    main()
