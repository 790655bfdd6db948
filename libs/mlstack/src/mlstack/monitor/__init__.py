"""Monitoring: Prometheus metrics, the inference log, drift reports (`mlstack.monitor.drift`)."""
