"""The webhook ingress: validates Trio's ``Job Update`` webhooks and publishes them to Kafka.

A webhook is answered 2xx only after Kafka acknowledged its event; see README.md in this folder.
"""
