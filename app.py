"""Newsdesk in the browser (placeholder until the chat lands): serves the shipped corpus' stats."""
