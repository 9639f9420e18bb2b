"""Flask extensions, created unbound; ``create_app`` binds them."""

from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from morket.core.db import Base
from morket.core.ratelimit import rate_limit_key

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=rate_limit_key, default_limits=["100/minute"], headers_enabled=True)
