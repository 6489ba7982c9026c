"""The Trio API poller: full and incremental syncs into Kafka, confirm mode, webhook health, leader election."""
