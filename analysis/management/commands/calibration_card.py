"""python manage.py calibration_card --out card.pdf: the printable calibration card."""

from django.core.management.base import BaseCommand

from analysis import engine


class Command(BaseCommand):
    help = "Write the printable calibration card (ArUco markers, grey and colour patches) as PDF."

    def add_arguments(self, parser):
        parser.add_argument("--out", default="card.pdf")
        parser.add_argument("--page-size", default="A4", choices=("A4", "LETTER"))

    def handle(self, *args, **opts):
        engine.make_calibration_card_pdf(opts["out"], page_size=opts["page_size"])
        self.stdout.write(f"wrote {opts['out']}")
