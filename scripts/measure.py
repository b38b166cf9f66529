"""Snakemake adaptor for the measure stage: see spacepixels.measure."""

from spacepixels import measure
from spacepixels.runner import run_stage


def main(sm):
    measure.publish(
        sm.input.candidates, sm.input.detections, sm.output.candidates, sm.output.detections
    )


run_stage(snakemake, main)
