"""Jobs, circuit breaker, leader lease and the job runner."""
