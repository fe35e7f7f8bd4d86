"""What is sent, and when: the planning and sending passes, late-change notices, follow-ups,
calendar invitations, the feeds, and the templates every message is rendered from."""
