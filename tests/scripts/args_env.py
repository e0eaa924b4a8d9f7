"""Entry script: init() reads --greeting (argparse) and APRS_TEST_VALUE from the environment."""

import argparse
import os

greeting = None
value = None


def init():
    global greeting, value
    parser = argparse.ArgumentParser()
    parser.add_argument("--greeting", required=True)
    args, _unknown = parser.parse_known_args()
    greeting = args.greeting
    value = os.environ["APRS_TEST_VALUE"]


def run(mini_batch):
    return [f"{greeting}:{value}:{item}" for item in mini_batch]
