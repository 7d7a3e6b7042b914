"""Device lab: benchmark bundles on this host, in browsers and on Android phones, and gate regressions."""
