"""One runner per surface (host CPU, web page, Android phone), each returning `record.BenchmarkResult`.

Runners measure and describe; they never judge. Optional dependencies (Playwright, the web demo, adb) are
imported inside the runner that needs them, so the host lab works on a machine without them.
"""
