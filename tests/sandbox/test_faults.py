from __future__ import annotations

from batch_deploy.sandbox import SandboxOptions
from batch_deploy.sandbox.faults import NODES, FaultDecision, Faults


def kinds(faults: Faults, count: int) -> list[str]:
    return [d.kind if (d := faults.decide()) else "ok" for _ in range(count)]


def test_no_faults_by_default() -> None:
    faults = Faults(SandboxOptions())
    assert kinds(faults, 50) == ["ok"] * 50
    assert faults.latency == 0.0
    assert not any(faults.task_fails() for _ in range(50))


def test_the_same_seed_gives_the_same_faults() -> None:
    options = SandboxOptions(error_rate=0.3, drop_rate=0.2, task_failure_rate=0.5, random_seed=11)
    first, second = Faults(options), Faults(options)
    assert kinds(first, 40) == kinds(second, 40)
    assert [first.task_fails() for _ in range(20)] == [second.task_fails() for _ in range(20)]
    assert [first.pick_node() for _ in range(20)] == [second.pick_node() for _ in range(20)]


def test_another_seed_gives_other_faults() -> None:
    one = kinds(Faults(SandboxOptions(error_rate=0.5, random_seed=1)), 40)
    two = kinds(Faults(SandboxOptions(error_rate=0.5, random_seed=2)), 40)
    assert one != two
    assert 5 < one.count("error") < 35


def test_one_fault_does_not_shift_another() -> None:
    alone = kinds(Faults(SandboxOptions(error_rate=0.5, random_seed=3)), 40)
    # With drops on as well, the requests that are not dropped meet the 503 decisions of
    # the error stream in the same order.
    both = kinds(Faults(SandboxOptions(error_rate=0.5, drop_rate=0.5, random_seed=3)), 40)
    assert "drop" in both
    kept = [kind for kind in both if kind != "drop"]
    assert kept == alone[: len(kept)]


def test_rates_of_one_always_strike() -> None:
    assert kinds(Faults(SandboxOptions(drop_rate=1.0)), 5) == ["drop"] * 5
    assert kinds(Faults(SandboxOptions(error_rate=1.0)), 5) == ["error"] * 5
    assert all(Faults(SandboxOptions(task_failure_rate=1.0)).task_fails() for _ in range(5))


def test_rate_limit_counts_accepted_requests_over_a_second() -> None:
    now = [100.0]
    faults = Faults(SandboxOptions(rate_limit=3, retry_after=0.25), clock=lambda: now[0])
    assert kinds(faults, 3) == ["ok"] * 3
    assert faults.decide() == FaultDecision("rate_limited", retry_after=0.25)
    now[0] += 0.5
    assert faults.decide() == FaultDecision("rate_limited", retry_after=0.25)
    now[0] += 0.5  # the first three are now a full second old
    assert kinds(faults, 4) == ["ok", "ok", "ok", "rate_limited"]


def test_nodes_are_drawn_from_the_cluster() -> None:
    faults = Faults(SandboxOptions(random_seed=5))
    picked = {faults.pick_node() for _ in range(50)}
    assert picked == set(NODES)


def test_latency_is_never_negative() -> None:
    assert Faults(SandboxOptions(latency=-1.0)).latency == 0.0
    assert Faults(SandboxOptions(latency=0.25)).latency == 0.25
