from photogram_common.migrations import run_env
from post_service.models import metadata

run_env(metadata)
