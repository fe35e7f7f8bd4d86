"""The transports that carry a message out: email (a Maildir, or SMTP) and the forum
(Markdown files, or Discourse's API)."""
