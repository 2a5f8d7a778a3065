"""python manage.py benchmark_accuracy: accuracy of the engine on a fixed-seed held-out phantom set."""

import logging

from django.core.management.base import BaseCommand

from analysis.engine import benchmark


class Command(BaseCommand):
    help = "Measure the engine against exact phantom ground truth and print a Markdown table."

    def add_arguments(self, parser):
        parser.add_argument("--n", type=int, default=40, help="trichoscopy fields (other sets scale with it)")
        parser.add_argument("--seed", type=int, default=benchmark.BENCH_SEED0)
        parser.add_argument(
            "--repeatability",
            action="store_true",
            help="first measure repeatability on unchanged pairs (own seeds) and save it",
        )
        parser.add_argument("--threads", type=int, default=2)
        parser.add_argument(
            "--hair-colour",
            type=int,
            metavar="N",
            help="instead, measure how the red-hair check separates N seeds' fields (no network; 300: about 8 min)",
        )
        parser.add_argument(
            "--fields-only",
            action="store_true",
            help="only the trichoscopy fields' rows (about 2 s a field), e.g. on another --seed",
        )

    def handle(self, *args, **opts):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        if opts["hair_colour"]:
            self.stdout.write(benchmark.hair_colour_separation(opts["hair_colour"]))
            return
        if opts["fields_only"]:
            self.stdout.write(benchmark.fields_only(opts["n"], opts["seed"], opts["threads"]))
            return
        if opts["repeatability"]:
            benchmark.measure_repeatability(threads=opts["threads"])
        report = benchmark.run(n=opts["n"], seed0=opts["seed"], threads=opts["threads"])
        self.stdout.write(report)
