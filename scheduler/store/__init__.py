"""What is kept: the SQLModel tables and their migrations, calls and their changes, subscribers,
and the outbox, the only code that moves a delivery from one state to the next."""
