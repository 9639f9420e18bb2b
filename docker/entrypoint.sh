#!/bin/sh
# Container entry point: the first argument picks the Morket process to run.
set -eu

role_file=/tmp/morket-role

case "${1:-web}" in
  web)
    echo web > "$role_file"
    exec gunicorn app:app \
      --config python:morket.gunicorn_config \
      --worker-class gthread \
      --workers "${WEB_CONCURRENCY:-2}" \
      --threads "${GUNICORN_THREADS:-4}" \
      --bind "0.0.0.0:${PORT:-8000}" \
      --graceful-timeout 30 \
      --access-logfile -
    ;;
  worker)
    echo worker > "$role_file"
    shift
    if [ "$#" -eq 0 ]; then set -- enrichment default io; fi
    exec python -m workers "$@"
    ;;
  scrape-worker)
    if ! python -c "import playwright" 2>/dev/null; then
      echo "this image has no browser: run scrape-worker from the scrape-worker image (docker build --target scrape-worker)" >&2
      exit 64
    fi
    echo worker > "$role_file"
    exec python -m workers scrape
    ;;
  scheduler)
    echo scheduler > "$role_file"
    exec python -m workers.scheduler
    ;;
  migrate)
    exec flask --app app db upgrade
    ;;
  healthcheck)
    case "$(cat "$role_file" 2>/dev/null || echo none)" in
      web)
        exec python -c "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4).status != 200)"
        ;;
      worker)
        # A worker is healthy while RQ still lists it: its heartbeat lapses when it hangs.
        exec python -c "import os, socket, sys; from redis import Redis; from rq import Worker; sys.exit(not any(w.hostname == socket.gethostname() for w in Worker.all(connection=Redis.from_url(os.environ['MORKET_REDIS_URL']))))"
        ;;
      *)
        exit 0
        ;;
    esac
    ;;
  *)
    echo "usage: entrypoint.sh web | worker [queues...] | scrape-worker | scheduler | migrate" >&2
    exit 64
    ;;
esac
