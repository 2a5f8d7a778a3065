"""Send again every analysis whose message may be lost. Safe to run from cron every few minutes:

    */5 * * * *  python manage.py sweep_analyses

Runs committed while the broker was down have no ``enqueued_at``; runs queued long ago or running
past their lease (a dead worker the broker did not redeliver for) are sent again. Workers claim
runs, so a message sent twice still analyses a photo once.
"""

import datetime

from django.core.management.base import BaseCommand

from analysis import broker as broker_setup
from analysis import services


class Command(BaseCommand):
    help = "Queue analyses whose message was never sent or may have been lost (safe to repeat; for cron)."

    def add_arguments(self, parser):
        parser.add_argument("--resend-after-minutes", type=float, default=15.0,
                            help="Resend runs queued (or past their lease) this long ago (default 15).")
        parser.add_argument("--wait", action="store_true",
                            help="Embedded broker only: wait until the in-process worker has analysed them.")

    def handle(self, *args, resend_after_minutes, wait, **options):
        counts = services.sweep_pending(resend_after=datetime.timedelta(minutes=resend_after_minutes))
        self.stdout.write(f"{counts['found']} run(s) pending, {counts['sent']} sent in {counts['messages']} message(s)")
        if counts["found"] and counts["sent"] < counts["found"]:
            self.stderr.write("the broker is unreachable; the runs stay queued and the next sweep retries")
        if wait and broker_setup.is_embedded():
            broker_setup.join_embedded()
