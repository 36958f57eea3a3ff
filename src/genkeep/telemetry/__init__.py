"""What genkeep tells operators about itself: Prometheus metrics."""
