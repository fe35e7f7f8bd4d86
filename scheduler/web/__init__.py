"""What members reach over HTTP: the feeds, the members' page, sign-up and unsubscribe,
/healthz and /metrics (`scheduler.web.app.create_app`)."""
