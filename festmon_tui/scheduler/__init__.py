"""Jobs, circuit breaker, leader lease and the live-update service the dashboard consumes."""
