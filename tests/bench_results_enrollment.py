"""Canned results of the enrollment bench (bench/bench_enrollment.py), as it saves them to
docs/results/bench/enrollment.json: the input of the render_enrollment tests
(tests/test_enrollment.py) and, through `bench_results.RESULTS`, of the report CLI tests."""

from __future__ import annotations


def enrollment_results() -> dict:
    def scores(wa: float, ua: float) -> dict:
        return {space: {"n": 10, "wa": wa, "ua": ua} for space in ("common", "own")}

    corpus = {
        "n": 10,
        "conditions": {"online_corpus": scores(40.0, 38.5), "speaker": scores(60.0, 61.25)},
        "statistics_error": {"speaker": {"mean_in_std": 0.0, "log_std_ratio": 0.0}},
        "same_emotion_share": {"online_corpus": 0.7},
        "by_heard": {
            "online_corpus": [
                {
                    "heard_s": [0.0, 10.0],
                    "n": 4,
                    "online": scores(25.0, 20.0),
                    "speaker": scores(50.0, 50.0),
                },
                {
                    "heard_s": [10.0, None],
                    "n": 6,
                    "online": scores(50.0, 52.0),
                    "speaker": scores(66.7, 65.0),
                },
            ]
        },
        "enrolled_s_mean": {"enroll_neutral_30s": 21.5, "enroll_neutral_all": 24.0},
        "no_neutral_enrollment": 2,
    }
    corpus["conditions"]["enroll_neutral_30s"] = scores(35.0, 33.5)  # neutral speech only
    corpus["conditions"]["enroll_neutral_all"] = scores(45.0, 44.25)
    corpus["statistics_error"]["enroll_neutral_30s"] = {"mean_in_std": 0.31, "log_std_ratio": -0.12}
    return {
        "what": "canned",
        "runs": ["a/results.json"],
        "folds": ["speaker-1of4"],
        "reproduction": {"speaker-1of4": {"predicted": 0, "predicted_speaker_norm": 0}},
        "seed": 0,
        "orders": 3,
        "enroll_seconds": [10.0, 60.0],
        "neutral_enroll_seconds": [30.0],
        "stream_prior_frames": 300,
        "stream_memory_frames": 6000,
        "corpora": {"casia": corpus},
    }
