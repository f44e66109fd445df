# Gunicorn settings for the gateway:
#
#   gunicorn -c gunicorn.conf.py 'gateway.serving.group_settings:create_group_app()'
#
# The settings themselves live in gateway/serving/gunicorn_conf.py, a flat list with a
# comment each, so that `gateway serve` finds them in an installed wheel as well; all
# are driven by GATEWAY_* settings (see the README).
from gateway.serving.gunicorn_conf import *  # noqa: F403
