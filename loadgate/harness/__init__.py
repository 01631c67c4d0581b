"""The Locust side of loadgate: everything that imports locust or gevent lives in this package.

``import loadgate.harness`` (any user class import does it) wires loadgate into Locust through its
events: settings on Locust's parser (:mod:`.options`), run state (:mod:`.state`), lifecycle
(:mod:`.lifecycle`), master/worker reports (:mod:`.distributed`), output files (:mod:`.outputs`), the web
UI tabs (:mod:`.webui`), the embedded target (:mod:`.embedded`), load profiles (:mod:`.profiles`); the
live SLA check (:mod:`.live_sla`) loads only with --sla. Locust/geventhttpclient privates are touched only
in :mod:`.locust_compat`.
"""

# lifecycle first: its init listener validates the settings before any other listener reads them
from loadgate.harness import lifecycle  # noqa: F401, I001
from loadgate.harness import embedded, locust_compat, options, outputs, precision, profiles, webui  # noqa: F401

lifecycle.install_probe()  # after embedded: the probe runs once the embedded target is up
precision.install()
locust_compat.set_pool_check()
locust_compat.set_socket_class()
locust_compat.set_user_stop()
outputs.install()
