"""The parameters of each task's requests, written once: bounds, defaults and help that the tabs' controls, the /v1
body checks, the API and MCP docs (the handlers' Args) and the CLI's options all read, and the one check every
front end's value goes through, so one out-of-range value gets one refusal wherever it was sent.

Front ends may pick their own defaults (OpenAI's /v1/completions writes 16 tokens unless asked), never other bounds.
A bound that is a setting of the app (how many images a request may ask for) is set once, by the service
(`Param.up_to`), and read from it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import GenerationError
from ..models.diffusion import DEFAULT_STEPS, MAX_STEPS
from ..models.text_to_image import DEFAULT_GUIDANCE, MAX_GUIDANCE, SIZE_MULTIPLE
from ..validation import MAX_SEED, as_int, as_number


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # int or float
    default: int | float
    lo: int | float
    hi: int | float
    help: str
    lo_open: bool = False  # lo itself is out (top_p: 0 keeps no token)
    rule: str = ""  # how a refusal states the range, when the plain bounds would not say it
    multiple: int = 1  # the value must be a multiple of this (image sizes)

    def range_text(self) -> str:
        if self.rule:
            return self.rule
        return f"in ({self.lo:g}, {self.hi:g}]" if self.lo_open else f"between {self.lo:g} and {self.hi:g}"

    def check(self, value: object) -> int | float:
        """`value` as this parameter's kind, within its bounds; GenerationError (the user's error) otherwise."""
        number = as_int(value, self.name) if self.kind is int else as_number(value, self.name)
        low_ok = number > self.lo if self.lo_open else number >= self.lo
        if not (low_ok and number <= self.hi and (self.multiple == 1 or number % self.multiple == 0)):
            shown = str(number) if isinstance(number, int) else f"{number:g}"
            raise GenerationError(f"{self.name} must be {self.range_text()}, got {shown}")
        return number

    def up_to(self, hi: int | float) -> "Param":
        """This parameter with the app's own upper bound (a setting), its help saying so."""
        return replace(self, hi=hi, help=self.help.replace(f"{self.hi:g}", f"{hi:g}"))


MAX_NEW_TOKENS = 2048
MAX_CHOICES = 16  # /v1: prompts × n in one request
MAX_IMAGES = 100_000  # per call of the service; the app's setting (max_images, 64) bounds its front ends
MAX_SIZE = 2048
MAX_FRAMES = 120
MAX_BEAMS = 8
DEFAULT_STRENGTH = 0.75  # image-to-image, as A1111's; inpainting and outpainting redraw their mask from noise (1)


def _seed(what: str) -> Param:
    return Param("seed", int, -1, -1, MAX_SEED, f"-1 for a random seed; {what}",
                 rule=f"-1 (random) or between 0 and {MAX_SEED}")


def _size(name: str) -> Param:
    return Param(name, int, 512, SIZE_MULTIPLE, MAX_SIZE, f"text-to-image pipelines only: the image's {name} in "
                 f"pixels, a multiple of {SIZE_MULTIPLE} (default: the model's size)", multiple=SIZE_MULTIPLE,
                 rule=f"a multiple of {SIZE_MULTIPLE} between {SIZE_MULTIPLE} and {MAX_SIZE}")


def table(*params: Param) -> dict[str, Param]:
    return {p.name: p for p in params}


TEXT = table(*[
    Param("max_new_tokens", int, 200, 1, MAX_NEW_TOKENS, "how many tokens to generate at most (1 to 2048; past "
          "the context the window slides)"),
    Param("temperature", float, 0.8, 0, 2, "0 for greedy decoding; higher is more varied (at most 2)"),
    Param("top_k", int, 50, 0, 1000, "sample from the k most likely tokens (0: no limit; at most 1000)"),
    Param("top_p", float, 0.95, 0, 1, "sample from the smallest set of tokens whose probabilities add up to p "
          "(above 0, at most 1)", lo_open=True),
    Param("repetition_penalty", float, 1.0, 0, 10, "1 for none; above 1 discourages repeating tokens (at most 10)",
          lo_open=True),
    _seed("the same seed and settings give the same text"),
    Param("n", int, 1, 1, MAX_CHOICES, f"how many choices (at most {MAX_CHOICES} in a request); choice i uses "
          "seed + i"),
])

IMAGE = table(
    Param("n", int, 1, 1, MAX_IMAGES, f"how many images (1 to {MAX_IMAGES}); image i uses seed + i"),
    _seed("image i uses seed + i; the same seed and settings give the same images"),
    Param("steps", int, DEFAULT_STEPS, 1, MAX_STEPS, f"diffusion models only: sampling steps (1 to {MAX_STEPS}; "
          "GANs take one)"),
    Param("guidance_scale", float, DEFAULT_GUIDANCE, 0, MAX_GUIDANCE, "text-to-image pipelines only: how strongly "
          f"to follow the prompt (0 to {MAX_GUIDANCE:g})"),
    _size("width"),
    _size("height"),
    Param("frames", int, 16, 2, MAX_FRAMES, f"interpolation: how many frames (2 to {MAX_FRAMES})"),
    Param("strength", float, DEFAULT_STRENGTH, 0, 1, "editing (diffusion models): how much of the input picture "
          "is redrawn, 0 (kept) to 1 (from noise); the last steps × strength steps run (default: 0.75, and 1 with "
          "a mask or outpainting)"),
    Param("variation_strength", float, 0.15, 0, 1, "variations: how far from the seed's image, 0 (the same) to 1 "
          "(another seed's); image i blends the seed's noise with variation seed + i's"),
)

TRANSLATION = table(
    Param("beams", int, 4, 1, MAX_BEAMS, f"beam search width, 1 (greedy) to {MAX_BEAMS}"),
    Param("n_best", int, 1, 1, MAX_BEAMS, "how many alternatives per line, 1 to the beam size"),
)
