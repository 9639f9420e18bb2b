"""Flask extensions, created unbound; ``create_app`` binds them."""

from flask import Flask, current_app, has_app_context
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from morket.core.db import Base
from morket.core.ratelimit import MovingWindowFromHit, rate_limit_key

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()


class AppBoundLimiter(Limiter):
    """Flask-Limiter keeps one storage per ``Limiter``, so a second ``create_app`` in a process (a
    test's live server, a CLI building its own app) would re-point every app's limits at its store.
    Each app keeps the storage and strategy it was bound with; outside a request the last one
    stands, as before. On Redis, the moving window's hit also brings back the window that the
    X-RateLimit-* headers report (one round trip instead of two; see ``MovingWindowFromHit``)."""

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        if type(self._limiter) is MovingWindowRateLimiter and isinstance(self._storage, RedisStorage):
            self._limiter = MovingWindowFromHit(self._storage)
        app.extensions["morket_limiter"] = (self._storage, self._limiter)

    def _bound(self):
        return current_app.extensions.get("morket_limiter") if has_app_context() else None

    @property
    def storage(self):
        bound = self._bound()
        return bound[0] if bound else super().storage

    @property
    def limiter(self):
        bound = self._bound()
        if bound and not (self._storage_dead and self._in_memory_fallback_enabled):
            return bound[1]
        return super().limiter


limiter = AppBoundLimiter(key_func=rate_limit_key, default_limits=["100/minute"], headers_enabled=True)
