"""The quality layer: live output validators, model-version watch, embedding drift, output statistics,
golden/canary evaluation, feedback and business metrics.

Every signal here reads the same `GenAICall` record through the same pipeline as cost and safety, so it
works whatever produced the span and with content export off.
"""
