"""Training jobs run from the app: the training scripts as subprocesses, their state on disk, their live progress.
No Gradio here: the Train tab and its API endpoints call JobManager."""

from .manager import JobManager, Limits
from .progress import Progress, read
from .store import ENDED, Job, JobStore

__all__ = ["ENDED", "Job", "JobManager", "Limits", "JobStore", "Progress", "read"]
