"""Background lanes: separate bounded queues per slow consumer, drops counted per lane, alive after fork."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from llm_telemetry.processors.lanes import BackgroundWorker, Lanes


def test_a_slow_lane_does_not_starve_another() -> None:
    lanes = Lanes(max_queue=2)
    release = threading.Event()
    judge, quality = lanes.get("judge"), lanes.get("quality")
    ran: list[str] = []
    assert judge.submit(lambda: release.wait(5))
    for _ in range(5):
        judge.submit(lambda: ran.append("judge"))
    for _ in range(3):
        assert quality.submit(lambda: ran.append("quality"))
        assert quality.flush(5)
    assert ran.count("quality") == 3  # the stuck judge lane did not hold these up
    release.set()
    assert lanes.flush(5)
    counts = lanes.dropped_counts()
    assert counts["judge_queue_full"] == judge.dropped >= 3
    assert counts["quality_queue_full"] == 0
    lanes.shutdown(1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_worker_keeps_working_in_a_forked_child() -> None:
    worker = BackgroundWorker(10, name="test-fork-worker")
    assert worker.submit(lambda: None) and worker.flush(5)  # the parent's thread is running
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the parent's thread is gone; the worker must start a new one
        code = 1
        try:
            done = threading.Event()
            worker.submit(done.set)
            code = 0 if done.wait(5) else 2
            os.write(write_end, b"ok" if code == 0 else b"stuck")
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    message = os.read(read_end, 16)
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0, message
    assert message == b"ok"
    assert worker.submit(lambda: None) and worker.flush(5)  # the parent is unaffected
    worker.shutdown(1)
