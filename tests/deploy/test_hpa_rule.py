"""The HPA rule that bench/autoscale.py replays (abrstack/k8s_scale.py), on exact cases from
the Kubernetes algorithm: ratio, tolerance, stabilisation windows, rate policies, bounds."""

from abrstack.k8s_scale import BEHAVIOR, Behavior, desired_replicas, edge_hpa, step


def test_desired_replicas_ratio_and_tolerance() -> None:
    assert desired_replicas(4, 150, 100) == 6  # ceil(4 x 1.5)
    assert desired_replicas(10, 50, 100) == 5
    assert desired_replicas(3, 101, 100) == 3  # within the 0.1 tolerance
    assert desired_replicas(4, 109, 100) == 4
    assert desired_replicas(4, 91, 100) == 4
    assert desired_replicas(4, 89, 100) == 4  # ceil(3.56): still 4
    assert desired_replicas(10, 89, 100) == 9
    assert desired_replicas(0, 500, 100) == 0  # scaled to zero: the HPA does nothing


def test_scale_down_takes_the_highest_recommendation_of_the_window() -> None:
    b = Behavior(down_window_s=300, down_percent=50, down_pods=1, down_period_s=60)
    assert step(10, 4, [(0.0, 8), (100.0, 6)], 200.0, [], 1, 100, b) == 8
    assert step(10, 4, [(0.0, 8), (100.0, 6)], 350.0, [], 1, 100, b) == 6  # 8 left the window
    assert step(10, 4, [], 350.0, [], 1, 100, b) == 5  # 50% per 60 s: ceil(10 x 0.5)
    assert step(10, 4, [], 350.0, [(320.0, -2)], 1, 100, b) == 6  # base 12: ceil(6)


def test_scale_up_policies_take_the_larger_and_count_the_period() -> None:
    assert BEHAVIOR.up_window_s == 0
    assert step(2, 20, [], 0.0, [], 1, 100) == 6  # max(2 x 200%, 2 + 4)
    assert step(10, 40, [], 0.0, [], 1, 100) == 20  # 100%
    assert step(6, 20, [], 30.0, [(0.0, 4)], 1, 100) == 6  # 4 were added within 60 s
    assert step(6, 20, [], 61.0, [(0.0, 4)], 1, 100) == 12
    assert step(6, 20, [], 61.0, [], 1, 9) == 9  # maxReplicas
    assert step(3, 1, [], 0.0, [], 2, 9) == 2  # 25% of 3 is no pod; the Pods policy gives 1
    assert step(3, 1, [], 0.0, [], 3, 9) == 3  # minReplicas


def test_the_rendered_behavior_is_the_replayed_one() -> None:
    hpa = edge_hpa("edge-1", "abrstack", {}, 2, 20)
    b = hpa["spec"]["behavior"]
    assert b["scaleDown"]["stabilizationWindowSeconds"] == BEHAVIOR.down_window_s
    assert b["scaleDown"]["policies"] == [
        {"type": "Percent", "value": BEHAVIOR.down_percent, "periodSeconds": BEHAVIOR.down_period_s},
        {"type": "Pods", "value": BEHAVIOR.down_pods, "periodSeconds": BEHAVIOR.down_period_s}]
    assert {p["type"]: p["value"] for p in b["scaleUp"]["policies"]} == {
        "Percent": BEHAVIOR.up_percent, "Pods": BEHAVIOR.up_pods}
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Pods"]["pods"]["metric"]["name"] == "edge_response_body_bytes_per_second"
