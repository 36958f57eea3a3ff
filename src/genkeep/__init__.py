"""genkeep: durable persistence and orchestration for AI-generated content."""

from genkeep.config import GeneratorProfile, Settings, load_settings
from genkeep.errors import GenkeepError

__version__ = "0.1.0"

__all__ = ["GeneratorProfile", "GenkeepError", "Settings", "__version__", "load_settings"]
