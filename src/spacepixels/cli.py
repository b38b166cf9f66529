"""The ``spacepixels`` command.

Each subcommand is a pair of functions: one adds its arguments to the parser, the other runs
it with the parsed arguments and returns the exit status. To add a subcommand, write the
pair and list it in :data:`SUBCOMMANDS`; :func:`main` does the rest.

Subcommands
-----------
``synth OUT``
    Write a seeded tree of synthetic nights to ``OUT/nights`` and its ground truth to
    ``OUT/truth.json`` (see :mod:`spacepixels.synth`).
``solve FRAME``
    Plate-solve one frame and print where it is (see :mod:`spacepixels.solve`).
``starlist near RA DEC RADIUS`` / ``starlist build OUT``
    Print the shipped Tycho-2 stars around a position, or make the star list again from
    the installed astrometry.net index files (see :mod:`spacepixels.starlist`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from spacepixels import __version__

__all__ = ["SUBCOMMANDS", "main"]

logger = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be non-negative, not {value}")
    return value


def _night(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from exc


def _counts(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not a count or a comma-separated list: {text!r}"
        ) from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"counts must be at least 1: {text!r}")
    return values


def _variants(text: str) -> list[str]:
    from spacepixels.synth import VARIANTS

    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown variant {', '.join(unknown) or text!r}; choose from {', '.join(VARIANTS)}"
        )
    return names


# --------------------------------------------------------------------------------------
# synth


def _add_synth(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "synth",
        help="write a seeded tree of synthetic nights with ground truth",
        description=(
            "Write realistic frames to OUT/nights/<YYYY-MM-DD>/<target>/<target>_<NNNN>.fits "
            "and the ground truth (every injected object's position per frame) to "
            "OUT/truth.json, beside the tree. The same seed gives the same bytes."
        ),
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="output folder")
    parser.add_argument("--seed", type=_seed, default=0, help="seed (default: 0)")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="make the project's demo tree (2 nights, 3 sessions of 16 frames); "
        "ignores the size options",
    )
    parser.add_argument("--nights", type=_positive_int, default=2, help="nights (default: 2)")
    parser.add_argument(
        "--sessions-per-night",
        type=_counts,
        default=[1],
        metavar="N[,N...]",
        help="sessions per night, or one count per night (default: 1)",
    )
    parser.add_argument(
        "--frames", type=_positive_int, default=20, help="frames per session (default: 20)"
    )
    parser.add_argument("--width", type=_positive_int, default=1024, help="default: 1024")
    parser.add_argument("--height", type=_positive_int, default=768, help="default: 768")
    parser.add_argument(
        "--variant",
        type=_variants,
        default=["uint16"],
        metavar="NAME[,NAME...]",
        help="frame format, or one per session in turn: uint16 (default), rgb, bayer, uint8, "
        "int32, float32, float64, fz, nodate",
    )
    parser.add_argument(
        "--rgb-axis",
        choices=("first", "last"),
        default="first",
        help="rgb frames as (3, H, W) (first, default) or (H, W, 3) (last)",
    )
    parser.add_argument(
        "--normalised-floats",
        action="store_true",
        help="float variants hold ADU / 65535 (0-1) instead of ADU",
    )
    parser.add_argument(
        "--exptime", type=float, default=None, help="exposure in s (default: 60, 90 or 120)"
    )
    parser.add_argument(
        "--first-night",
        type=_night,
        default=None,
        metavar="YYYY-MM-DD",
        help="date of the first night (default: 2026-03-14)",
    )
    parser.add_argument("--no-wcs", action="store_true", help="write no WCS cards")
    parser.add_argument(
        "--catalog",
        action="store_true",
        help="draw the real Tycho-2 stars at each target's true pointing (for plate solving; "
        "7 arcsec/px unless --pixel-scale)",
    )
    parser.add_argument(
        "--pixel-scale", type=float, default=None, metavar="ARCSEC", help="arcsec per pixel"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a tree made earlier in OUT (one with a truth.json beside it)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _run_synth(args: argparse.Namespace) -> int:
    from spacepixels import synth

    progress = not args.no_progress
    if args.demo:
        truth = synth.make_demo_tree(
            args.out,
            seed=args.seed,
            progress=progress,
            overwrite=args.overwrite,
            catalog=args.catalog,
            wcs=not args.no_wcs,
        )
    else:
        truth = synth.make_night_tree(
            args.out,
            seed=args.seed,
            nights=args.nights,
            sessions_per_night=args.sessions_per_night,
            n_frames=args.frames,
            shape=(args.height, args.width),
            variant=args.variant,
            progress=progress,
            first_night=args.first_night or synth.DEFAULT_FIRST_NIGHT,
            exptime=args.exptime,
            wcs=not args.no_wcs,
            rgb_axis=args.rgb_axis,
            normalised_floats=args.normalised_floats,
            overwrite=args.overwrite,
            catalog=args.catalog,
            pixel_scale_arcsec=args.pixel_scale,
        )
    print(f"frames: {truth.parent / 'nights'}")
    print(f"truth:  {truth}")
    return 0


# --------------------------------------------------------------------------------------
# solve


def _add_solve(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from spacepixels.solve import METHODS

    parser = subparsers.add_parser(
        "solve",
        help="plate-solve one frame",
        description=(
            "Find where on the sky a frame is: its own WCS if it is believable, else "
            "solve-field or ASTAP (offline), or nova.astrometry.net when asked by name. "
            "Prints the answer; with --out, writes wcs.fits and solve.json there."
        ),
    )
    parser.add_argument("frame", type=Path, metavar="FRAME", help="a FITS or XISF frame")
    parser.add_argument("--method", choices=METHODS, default="auto", help="default: auto")
    parser.add_argument("--ra", default=None, help="RA hint: degrees, or hh:mm:ss")
    parser.add_argument("--dec", default=None, help="Dec hint: degrees, or dd:mm:ss")
    parser.add_argument("--radius", type=float, default=None, help="search radius, degrees")
    parser.add_argument("--scale-low", type=float, default=None, help="arcsec/px")
    parser.add_argument("--scale-high", type=float, default=None, help="arcsec/px")
    parser.add_argument("--timeout", type=float, default=None, help="seconds (default: 120)")
    parser.add_argument("--out", type=Path, default=None, help="folder for wcs.fits, solve.json")
    return parser


def _run_solve(args: argparse.Namespace) -> int:
    import tempfile

    from spacepixels import solve

    values = {
        "method": args.method,
        "ra": args.ra,
        "dec": args.dec,
        "radius_deg": args.radius,
        "scale_low": args.scale_low,
        "scale_high": args.scale_high,
        "timeout_s": args.timeout,
    }
    settings = solve.SolveSettings.from_mapping(values)
    with tempfile.TemporaryDirectory(prefix="spacepixels-solve-") as work:
        header, info = solve.solve_session(args.frame, settings, Path(work))
    if args.out is not None:
        solve.write_solution(header, info, args.out / "wcs.fits", args.out / "solve.json")
    print(f"{info['status']}: {info['message']}")
    return 0 if info["status"] == "solved" else 1


# --------------------------------------------------------------------------------------
# starlist


def _add_starlist(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "starlist",
        help="the shipped Tycho-2 star list: query it, or build it again",
        description=(
            "near RA DEC RADIUS: print the listed stars within RADIUS degrees (RA, Dec in "
            "degrees, VT magnitude). build OUT: make the list again from the installed "
            "astrometry.net Tycho-2 index files with query-starkd."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    near = actions.add_parser("near", help="print the stars around a position")
    near.add_argument("ra", type=float, metavar="RA", help="degrees")
    near.add_argument("dec", type=float, metavar="DEC", help="degrees")
    near.add_argument("radius", type=float, metavar="RADIUS", help="degrees")
    build = actions.add_parser("build", help="make the star list from the index files")
    build.add_argument("out", type=Path, metavar="OUT", help="file to write (.ecsv.gz)")
    build.add_argument("--radius", type=float, default=None, help="degrees around each field")
    build.add_argument("--index-dir", default=None, help="folder of the index files")
    return parser


def _run_starlist(args: argparse.Namespace) -> int:
    from spacepixels import starlist

    if args.action == "near":
        table = starlist.stars_near(args.ra, args.dec, args.radius)
        print(f"# {len(table)} stars within {args.radius:g} deg of {args.ra:g} {args.dec:+g}")
        print("# ra_deg dec_deg mag_vt")
        for row in table:
            print(f"{row['ra']:.6f} {row['dec']:+.6f} {row['mag']:.3f}")
        return 0
    files = starlist.find_index_files(args.index_dir, pattern="index-tycho2-*.fits")
    path = starlist.build_star_list(
        args.out,
        radius_deg=args.radius or starlist.STAR_LIST_RADIUS_DEG,
        index_files=files or None,
    )
    print(f"star list: {path}")
    return 0


# --------------------------------------------------------------------------------------

Subcommand = tuple[
    str,
    Callable[[argparse._SubParsersAction], argparse.ArgumentParser],
    Callable[[argparse.Namespace], int],
]

SUBCOMMANDS: list[Subcommand] = [
    ("synth", _add_synth, _run_synth),
    ("solve", _add_solve, _run_solve),
    ("starlist", _add_starlist, _run_starlist),
]
"""The subcommands: (name, function adding its parser, function running it)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spacepixels",
        description="SpacePixels: find what moved in nights of aligned sub-exposures.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log messages (-vv: debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, add, run in SUBCOMMANDS:
        sub = add(subparsers)
        sub.set_defaults(_run=run, _name=name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``spacepixels`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 on success, 1 when the command failed, 2 for bad arguments.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args._run(args)
    except (FileExistsError, ValueError, OSError) as exc:
        print(f"spacepixels {args._name}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
