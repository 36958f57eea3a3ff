"""Tables, one module per concept. Every table holding owner data has ``owner_id`` (I3)."""

from genkeep.db.models.artifacts import Artifact, ArtifactCounter, ArtifactLatest
from genkeep.db.models.base import NAMING, UNFINISHED_SQL, Base
from genkeep.db.models.generations import Prompt, Result
from genkeep.db.models.housekeeping import Deletion, Sweep
from genkeep.db.models.jobs import Job, JobEvent, Task, TaskChange, TaskWatcher
from genkeep.db.models.keys import ApiKey
from genkeep.db.models.runs import (
    LlmAnswer,
    LlmFlight,
    OntologyRecord,
    Run,
    RunBatch,
    RunChange,
    RunEntity,
    RunWatcher,
)
from genkeep.db.models.usage import (
    RateBucket,
    SpendCounter,
    SpendLimit,
    SpendReservation,
    UpstreamWindow,
    UsageEntry,
)

__all__ = [
    "NAMING",
    "UNFINISHED_SQL",
    "ApiKey",
    "Artifact",
    "ArtifactCounter",
    "ArtifactLatest",
    "Base",
    "Deletion",
    "Job",
    "JobEvent",
    "LlmAnswer",
    "LlmFlight",
    "OntologyRecord",
    "Prompt",
    "RateBucket",
    "Result",
    "Run",
    "RunBatch",
    "RunChange",
    "RunEntity",
    "RunWatcher",
    "SpendCounter",
    "SpendLimit",
    "SpendReservation",
    "Sweep",
    "Task",
    "TaskChange",
    "TaskWatcher",
    "UpstreamWindow",
    "UsageEntry",
]
