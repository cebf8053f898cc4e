"""Serving: the predictor, the wire protocol, the protobuf record, the WSGI app, batch outputs, the gunicorn
workers, the nginx proxy in front of them and the supervisor that runs both, and the HTTP client. Only the
predictor and the gunicorn workers import MXNet."""
