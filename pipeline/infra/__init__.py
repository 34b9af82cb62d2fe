"""Infrastructure every layer may use: files, locks, devices, logs, the CLI error shape, registries, metric specs."""
