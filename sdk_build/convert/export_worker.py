"""Child-process entry point for the float export: `python -m sdk_build.convert.export_worker REQUEST.pkl`.

The export is run in its own process so that the 4-6 GB litert-torch holds while converting is returned to
the OS when it ends (the parent goes on quantizing and bundling), and so that its peak RSS can be measured
per variant. It writes its peak RSS to the request's `result` path.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path


def main(request_path: str) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from sdk_build.convert.export import export_float_tflite
    from sdk_build.system import mmap_guard
    from sdk_build.system.memory import own_peak_rss_bytes

    mmap_guard.install()  # a full disk: an OSError in the log, not a silent SIGBUS

    request = pickle.loads(Path(request_path).read_bytes())
    export_float_tflite(request["checkpoint"], request["ekv"], request["prefill"], request["path"], request["options"])
    Path(request["result"]).write_text(json.dumps({"peak_rss_bytes": own_peak_rss_bytes()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
