"""Transports: RabbitMQ (aio-pika) for real use, an in-memory broker for tests."""
