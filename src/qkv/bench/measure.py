"""Timing one attention benchmark case: in this process (:func:`measure`), or in a fresh
process (:func:`measure_in_subprocess`) so that the peak resident memory of the first call
(``getrusage`` max RSS, minus the RSS once the inputs exist) is attributable to that case
alone. The process is forked from a forkserver that has already imported torch and qkv, so a
case costs no interpreter start-up.
"""

from __future__ import annotations

import time

import torch

from qkv.bench.attention_cases import Case, Result, build, max_rss_bytes


def measure(case: Case, repeats: int = 3, warmup: int = 1) -> Result:
    """Time ``case`` in this process: median of ``repeats`` runs after ``warmup`` runs."""
    run, _, chosen, reason = build(case)
    result = Result(case=case, chosen=chosen, reason=reason)
    grad = torch.enable_grad() if case.backward else torch.no_grad()
    with grad:
        for _ in range(warmup):
            run()
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            result.times.append(time.perf_counter() - start)
    return result


def worker(case: Case, repeats: int) -> dict:
    """Subprocess body: peak RSS growth of the first run, then ``repeats`` timed runs."""
    run, before, chosen, reason = build(case)
    grad = torch.enable_grad() if case.backward else torch.no_grad()
    times = []
    with grad:
        start = time.perf_counter()
        run()
        first = time.perf_counter() - start
        peak = max_rss_bytes() - before
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    # With no repeats (the largest cases) the first run is the timing.
    return {"times": times or [first], "peak": peak, "chosen": chosen, "reason": reason}


_CONTEXT = None


def _context():
    """A forkserver that has imported torch once: each case forks from it (fast, fresh RSS)."""
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing

        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["torch", "qkv.attention", "qkv.bench.measure"])
    return _CONTEXT


def _child(case: Case, repeats: int, connection) -> None:
    try:
        connection.send(worker(case, repeats))
    except Exception as error:  # reported in the table, not raised
        connection.send({"error": f"{type(error).__name__}: {str(error)[:100]}"})
    finally:
        connection.close()


def measure_in_subprocess(case: Case, repeats: int, timeout: float = 900.0) -> Result:
    """Run :func:`worker` for ``case`` in a fresh process; failures become ``error``."""
    context = _context()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(case, repeats, send))
    process.start()
    send.close()
    result = Result(case=case)
    payload = None
    if receive.poll(timeout):
        try:
            payload = receive.recv()
        except EOFError:
            payload = None
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join()
        result.error = f"timed out after {timeout:.0f} s"
        return result
    if payload is None:
        killed = process.exitcode in (-9, 137)
        result.error = "killed (out of memory?)" if killed else f"exit code {process.exitcode}"
        return result
    if "error" in payload:
        result.error = payload["error"]
        return result
    result.times, result.peak_bytes = payload["times"], payload["peak"]
    result.chosen, result.reason = payload["chosen"], payload["reason"]
    return result
