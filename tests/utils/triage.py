"""A triage client that records its calls, for routing tests without Triton."""

from orchestrator.triton.triage_client import Prediction, TritonUnavailable

MODEL = "ticket_triage"
TEXTS = [f"ticket {i}: my card has not arrived yet" for i in range(300)]  # 300 distinct texts


class RecordingTriage:
    """classify() as TriageClient's: records each call; answers name the version asked."""

    model = MODEL

    def __init__(self):
        self.calls: list[tuple[int | None, list[str]]] = []
        self.priorities: list[int] = []
        self.failing: set[int] = set()  # versions that answer as an unloaded model does

    async def classify(
        self, texts: list[str], version: int | None = None, *, priority: int = 2
    ) -> list[Prediction]:
        self.calls.append((version, list(texts)))
        self.priorities.append(priority)
        if version in self.failing:
            raise TritonUnavailable(f"Request for unknown model: version {version} is not ready")
        top = [("card_arrival", 0.9), ("card_linking", 0.1)]
        return [Prediction("card_arrival", 0.9, top, str(version)) for _ in texts]
