from notification_service.models import metadata
from photogram_common.migrations import run_env

run_env(metadata)
