"""All three loadgate user classes: ChatUser, BatchUser, ModelsUser (and --profile load shapes).

    locust -f locustfiles/locustfile.py --headless -u 20 -r 5 -t 1m --host http://127.0.0.1:8000 --csv out/run

The classes ship inside the package (loadgate/harness/locustfile.py, what `loadgate run` uses); copy
this file and subclass them to change weights or add tasks.
"""

from loadgate.harness.locustfile import BatchUser, ChatUser, LoadProfileShape, ModelsUser

__all__ = ["BatchUser", "ChatUser", "LoadProfileShape", "ModelsUser"]
