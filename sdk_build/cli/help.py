"""One line per `sdk-build` command: its parser's help, and what `gemma-edge --help` lists for it."""

COMMAND_HELP = {
    "build": "build one variant (.task and/or .litertlm) into an output folder",
    "verify": "run a bundle in LiteRT-LM (CPU or GPU) and compare with the fp32 reference",
    "matrix": "build every variant of a plan (default: Google's Gemma 3 1B set)",
    "build-defaults": "build the main job's bundle set (= matrix --matrix demo)",
    "catalog": "write catalog.json (what apps read to pick and verify bundles)",
    "pull": "download bundles from a catalog: resumable, sha256-verified",
    "make-tiny": "write a tiny Gemma-3-shaped checkpoint (for smoke tests)",
}
