"""``python -m app.web`` = ``mum-web``."""
from app.web.server import main

raise SystemExit(main())
