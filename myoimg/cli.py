"""Command-line interface: thin wrappers over the public API.

Every user-caused error (:class:`myoimg.errors.MyoimgError`) is printed on one line
and exits with status 2; ``--debug`` shows the traceback instead. Heavy modules are
imported inside the commands so that ``myoimg --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from myoimg import __version__
from myoimg.errors import MyoimgError

EXIT_USAGE = 2


def _series_option(p: argparse.ArgumentParser, help_: str = "series to use: SeriesInstanceUID "
                   "(or a unique prefix) or the number shown by 'myoimg inspect'") -> None:
    p.add_argument("--series", metavar="UID|N", default=None, help=help_)


# --------------------------------------------------------------------------- commands


def cmd_inspect(args: argparse.Namespace) -> int:
    from myoimg.io import format_series_table, scan, select_series
    from myoimg.progress import Progress

    progress = Progress(quiet=args.quiet)
    result = scan(args.folder, progress=progress.items("reading headers"))
    if not result.series:
        select_series(result, None)  # raises the "no DICOM image series" error
    print(format_series_table(result))
    return 0


def cmd_suv(args: argparse.Namespace) -> int:
    from myoimg.io import load_image, write_nifti
    from myoimg.quantify.suv import compute_suv

    volume = load_image(args.pet, role="pet", series=args.series,
                        resample_nonuniform=args.resample_nonuniform)
    result = compute_suv(volume, kind=args.type, lbm_formula=args.lbm_formula)
    write_nifti(result.image, args.output)
    print(result.factor.describe())
    print(f"SUV image written to {args.output}")
    return 0


def cmd_phantom(args: argparse.Namespace) -> int:
    from myoimg.phantom import generate_study
    from myoimg.progress import Progress

    progress = Progress(quiet=args.quiet)
    progress.stage(f"generating reference study (seed {args.seed}, variant {args.variant})")
    out = generate_study(args.output, seed=args.seed, variant=args.variant,
                         progress=progress.items("series"), overwrite=args.overwrite)
    progress.done()
    print(f"reference study written to {out}")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from myoimg.pipeline import segment_command

    return segment_command(args)


def cmd_analyze(args: argparse.Namespace) -> int:
    from myoimg.pipeline import PipelineOptions, run_analyze

    options = PipelineOptions.from_args(args)
    run_analyze(args.study, args.output, options, visit=args.visit)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from myoimg.pipeline import PipelineOptions, run_compare

    options = PipelineOptions.from_args(args)
    run_compare(args.baseline, args.followup, args.output, options)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from myoimg.report import render_report

    paths = render_report(args.results, per_muscle=args.per_muscle, anonymize=args.anonymize,
                          paper=args.paper, pseudonym_key_file=args.pseudonym_key_file)
    for p in paths:
        print(f"written {p}")
    return 0


# --------------------------------------------------------------------------- parser


def _add_analysis_options(p: argparse.ArgumentParser, compare: bool) -> None:
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder (must not exist "
                   "unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--series", action="append", metavar=("VISIT:" if compare else "") + "ROLE=UID|N",
                   help="choose a series by role (t2fs, pet, ct)"
                   + (" for one visit (baseline/followup)" if compare else "") + "; repeatable")
    if compare:
        p.add_argument("--labels-from", choices=("auto", "propagate"), default="auto",
                       help="follow-up labels: segment automatically (auto) or carry the baseline "
                       "labels by registration (propagate); default auto")
        p.add_argument("--deformable", action="store_true", help="with --labels-from propagate: "
                       "add a gentle B-spline stage after the rigid follow-up -> baseline "
                       "registration (muscle shape changes between visits)")
        p.add_argument("--oedema-change", type=float, metavar="F", help="oedema fraction change "
                       "(0-1) that counts as improved/worse (default 0.10)")
        p.add_argument("--suv-change-rel", type=float, metavar="F", help="relative SUV change "
                       "(PERCIST-like, default 0.30), required together with --suv-change-abs")
        p.add_argument("--suv-change-abs", type=float, metavar="SUV", help="absolute SUV change "
                       "(default 0.8)")
        p.add_argument("--tbr-change", type=float, metavar="F", help="relative change of the "
                       "target-to-background ratio (default 0.30)")
        p.add_argument("--avid-change-rel", type=float, metavar="F", help="relative change of the "
                       "avid volume and TLA (default 0.30), required together with "
                       "--avid-change-abs")
        p.add_argument("--avid-change-abs", type=float, metavar="ML", help="absolute change of the "
                       "avid volume (mL) and TLA (SUV x mL) (default 1.0)")
        p.add_argument("--volume-change", type=float, metavar="F", help="relative volume change "
                       "for increased/decreased (default 0.10)")
        p.add_argument("--labels-baseline", type=Path, help="user label map for the baseline MRI")
        p.add_argument("--labels-followup", type=Path, help="user label map for the follow-up MRI")
    else:
        p.add_argument("--labels", type=Path, help="user label map (NIfTI/NRRD, DICOM SEG or "
                       "RTSTRUCT) instead of automatic segmentation")
    p.add_argument("--label-mapping", default=None, help="label convention of imported masks: "
                   "dafne, musclemap, totalsegmentator (default: myoimg ids)")
    p.add_argument("--reference", default=None, metavar="NAMES", help="reference (healthy) muscle "
                   "labels, comma separated names or ids (e.g. R_HAM,L_HAM); default: automatic")
    p.add_argument("--oedema-threshold", default="mean+2sd", help="'mean+2sd' (default, "
                   "published STIR rule), 'mean+3sd' (fewer noise voxels), "
                   "'mean+4sd', or a number = normalised T2-FS threshold")
    p.add_argument("--oedema-baseline", choices=("per-muscle", "reference"),
                   default="per-muscle", help="count oedema above each muscle's own healthy "
                   "level, bounded to +-10%% of the reference (default), or above the reference")
    p.add_argument("--oedema-rim", choices=("nearest", "excluded"), default="nearest",
                   help="voxels of the eroded rim take the class of the nearest interior voxel "
                   "(default) or are left out of the oedema fraction")
    p.add_argument("--no-erode", action="store_true", help="do not erode muscles by one in-plane "
                   "voxel before counting oedema")
    p.add_argument("--oedema-min-cluster", type=int, default=3, metavar="N",
                   help="fewest in-plane connected voxels of an oedema cluster; smaller groups "
                   "above the threshold are noise (default 3; 0 counts every voxel)")
    p.add_argument("--oedema-binary", action="store_true",
                   help="count every oedema voxel whole (default: a voxel on the edge of an "
                   "oedema cluster counts by its oedema content, for partial volume)")
    p.add_argument("--avid-threshold", default=None, help="FAPI-avid SUV threshold: a number (SUV) "
                   "or 'ref+2sd' (default: see README)")
    p.add_argument("--suv-type", choices=("bw", "lbm", "bsa"), default="bw")
    p.add_argument("--no-report", action="store_true", help="skip the PDF report")
    p.add_argument("--per-muscle", action="store_true", help="also one PDF per muscle")
    _anonymize_options(p)
    p.add_argument("--paper", choices=("a4", "letter"), default="a4")


def _anonymize_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--anonymize", action="store_true", help="replace the patient id by a keyed "
                   "pseudonym (anon- + 12 hex digits of HMAC-SHA256) in outputs")
    p.add_argument("--pseudonym-key-file", type=Path, metavar="PATH", default=None,
                   help="secret key of the pseudonym (with --anonymize): the same key gives the "
                   "same pseudonym in every run, to link visits and runs of a study. Default: "
                   "the environment variable MYOIMG_PSEUDONYM_KEY, else a random key of this "
                   "run only (pseudonyms then not comparable across runs). The key is never "
                   "written to the outputs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="myoimg",
        description="Quantitative thigh MRI (T2-FS/STIR) and FAPI-PET/CT for inflammatory myopathy.",
    )
    parser.add_argument("--version", action="version", version=f"myoimg {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    common.add_argument("--resample-nonuniform", action="store_true",
                        help="resample series with uneven slice spacing or a missing slice onto a "
                        "uniform grid (with a warning) instead of refusing them")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", parents=[common], help="list the series in a DICOM folder")
    p.add_argument("folder", type=Path)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("suv", parents=[common], help="convert a PET series to SUV (NIfTI)")
    p.add_argument("pet", type=Path, help="DICOM folder holding the PET series")
    p.add_argument("-o", "--output", required=True, type=Path, help="output .nii.gz")
    _series_option(p)
    p.add_argument("--type", choices=("bw", "lbm", "bsa"), default="bw",
                   help="SUV normalisation: body weight (default), lean body mass (SUL), body surface area")
    p.add_argument("--lbm-formula", choices=("janmahasatian", "james"), default="janmahasatian")
    p.set_defaults(func=cmd_suv)

    p = sub.add_parser("segment", parents=[common], help="segment the quadriceps on a thigh MRI")
    p.add_argument("input", type=Path, help="DICOM folder or NIfTI file")
    p.add_argument("-o", "--output", required=True, type=Path, help="output label map (.nii.gz)")
    p.add_argument("--contrast", choices=("auto", "t2fs", "stir", "water", "t1"), default="auto")
    _series_option(p)
    p.add_argument("--qc", type=Path, default=None, help="write a QC PNG with outlines")
    p.add_argument("--qc-steps", type=Path, default=None, metavar="PNG",
                   help="write a PNG of the intermediate steps on three slices: the image after "
                   "N4, the legs / muscle fascia / femur masks, the compartments, the labels")
    p.add_argument("--no-bias-correction", action="store_true",
                   help="skip the N4 bias-field correction done before segmenting")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("analyze", parents=[common], help="quantify one visit (DICOM folder)")
    p.add_argument("study", type=Path)
    p.add_argument("--visit", choices=("baseline", "followup"), default="baseline",
                   help="name of this visit in the outputs (default: baseline)")
    _add_analysis_options(p, compare=False)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("compare", parents=[common], help="quantify and compare two visits")
    p.add_argument("baseline", type=Path)
    p.add_argument("followup", type=Path)
    _add_analysis_options(p, compare=True)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", parents=[common], help="render the PDF from an existing output folder")
    p.add_argument("results", type=Path, help="output folder of analyze/compare")
    p.add_argument("--per-muscle", action="store_true")
    _anonymize_options(p)
    p.add_argument("--paper", choices=("a4", "letter"), default="a4")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("phantom", parents=[common], help="generate the digital reference study")
    p.add_argument("output", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", default="standard",
                   help="standard, philips_cnts, midnight, oblique or thin")
    p.add_argument("--overwrite", action="store_true", help="replace existing visit folders")
    p.set_defaults(func=cmd_phantom)
    return parser


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """``kill`` (SIGTERM, e.g. a batch scheduler's time limit) stops a command as Ctrl-C
    does, so that the outputs staged so far are removed instead of left behind.

    Forked worker processes inherit the handler: in them it falls back to the default
    action (their parent stops them with SIGTERM and cleans up itself).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    pid = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The terminal gets warnings (debug: everything); the run's log file (pipeline) gets INFO.
    handler = logging.StreamHandler()
    handler.setLevel(logging.DEBUG if args.debug else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if args.debug:
        root.setLevel(logging.DEBUG)
    try:
        with _stop_on_sigterm():
            return int(args.func(args) or 0)
    except MyoimgError as exc:
        if args.debug:
            raise
        print(f"myoimg {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("myoimg: interrupted (Ctrl-C or kill); no partial outputs were kept",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
