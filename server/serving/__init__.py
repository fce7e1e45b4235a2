"""How ``gantry serve`` runs the app under gunicorn: a threaded worker whose connections must
deliver each request within a read timeout, that answers gunicorn's own refusals as problem+json,
and a logger that never writes a credential."""
