"""A small word-level transformers tokenizer for the embedded world.

Word-level keeps the world's models fast (a vocabulary of a few hundred entries, one token per word or
number) while still being a real ``PreTrainedTokenizerFast``: offsets, special tokens, a chat template,
``save_pretrained``/``from_pretrained``. Each token carries its own leading space, so decoding is plain
concatenation and round-trips the text exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tracesieve.rendering import THINK_CLOSE, THINK_OPEN

UNK, PAD, EOS = "<|unk|>", "<|pad|>", "<|endoftext|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

# Newline runs, then an optional single space glued to a LaTeX command, a word, a number or one symbol,
# then any other single whitespace character. Every character of the input falls in exactly one piece.
PIECE_PATTERN = r"\n+|[ ]?(?:\\[A-Za-z]+|[A-Za-z]+|\d+|[^\sA-Za-z\d])|\s"

# Renders the R1 format: the generation prompt opens the thinking block, as R1-distilled models do.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ '" + EOS + "' }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n" + THINK_OPEN + "\\n' }}{% endif %}"
)


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated")


def build_word_tokenizer(texts: Iterable[str], numbers_up_to: int) -> PreTrainedTokenizerFast:
    """Build a word-level tokenizer whose vocabulary covers ``texts`` and every number up to ``numbers_up_to``.

    Numbers are added with and without a leading space whether or not the corpus shows them, so that a
    model can write any answer in range.
    """
    pre_tokenizer = _pre_tokenizer()
    pieces: set[str] = {" ", "\n", "\n\n"}
    for text in texts:
        pieces.update(piece for piece, _ in pre_tokenizer.pre_tokenize_str(text))
    for number in range(numbers_up_to + 1):
        pieces.update((str(number), f" {number}"))
    special = [PAD, UNK, EOS, *ROLE_TOKENS]
    added = [THINK_OPEN, THINK_CLOSE]
    ordered = special + added + sorted(pieces - set(special) - set(added))
    vocab = {piece: index for index, piece in enumerate(ordered)}

    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=UNK,
        pad_token=PAD,
        eos_token=EOS,
        additional_special_tokens=list(ROLE_TOKENS),
        model_max_length=4096,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    # <think> tags are ordinary added tokens, not special ones, so decoding keeps them in the text.
    tokenizer.add_tokens([THINK_OPEN, THINK_CLOSE])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
