"""Translation on CTranslate2: a seq2seq folder converted once (ct2_convert.py), then beam search with n-best lists
through `ctranslate2.Translator` — the same inputs and outputs as models/translation.py's transformers path."""

from __future__ import annotations

from pathlib import Path

from .ct2_convert import folder_bytes, placement


class CT2Translator:
    """A loaded CTranslate2 model: `translate` takes token lists, as `ctranslate2.Translator.translate_batch`."""

    def __init__(self, folder: Path, device: str, threads: int, batch: int, length_penalty: float = 1.0) -> None:
        import ctranslate2

        kind, index, self.compute_type = placement(device)
        self.folder, self.batch, self.length_penalty = folder, batch, length_penalty
        # On CPU, one thread per batch and the batches in parallel: 2 threads on one batch ran the starter's held-out
        # set at 269 sentences/s, 1 thread at 721, 2 batches of 1 thread each at 1,391 (bench_backends.py's machine).
        self.workers = threads if kind == "cpu" else 1
        self.translator = ctranslate2.Translator(str(folder), device=kind, device_index=index,
                                                 compute_type=self.compute_type, inter_threads=self.workers,
                                                 intra_threads=1 if kind == "cpu" else 0)
        self.bytes = folder_bytes(folder)

    def translate(self, tokens: list[list[str]], beams: int, n_best: int, max_new_tokens: int,
                  prefix: list[str] | None) -> list[list[tuple[list[str], float | None]]]:
        """For each source, `n_best` (target tokens, length-normalised log-probability) pairs, best first. The
        sources are translated in batches of `batch`, `workers` of them at a time."""
        results = self.translator.translate_batch(
            tokens, max_batch_size=self.batch, beam_size=beams, num_hypotheses=n_best, return_scores=n_best > 1,
            length_penalty=self.length_penalty,
            max_decoding_length=max_new_tokens, target_prefix=[prefix] * len(tokens) if prefix else None)
        return [[(hyp[len(prefix or []):], r.scores[k] if n_best > 1 else None) for k, hyp in enumerate(r.hypotheses)]
                for r in results]


