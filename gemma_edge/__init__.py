"""gemma-edge's one command line: `gemma-edge COMMAND ...` for everything a user runs.

The package sits above the four layers (`sdk_build`, `android_bridge`, `web_demo`, `device_tests`) and only
dispatches: each command is the existing command line of the package that owns it, so `gemma-edge serve` and
`python -m web_demo` take the same flags (`sdk-build` keeps working too).
"""
