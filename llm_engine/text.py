"""Turning token bytes into streamed text: UTF-8 across token boundaries, and stop words."""

import codecs


class TextStream:
    """Accumulates generated text; releases only what cannot be the start of a stop word."""

    def __init__(self, stop: tuple[str, ...] = ()):
        self.stop = stop
        self.text = ""
        self.released = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._hold = max((len(s) - 1 for s in stop), default=0)

    def push(self, piece: bytes) -> tuple[str, bool]:
        """Add a token's bytes; return (text safe to send now, whether a stop word was hit)."""
        self.text += self._decoder.decode(piece)
        for word in self.stop:
            at = self.text.find(word, max(0, self.released - len(word)))
            if at != -1:
                self.text = self.text[:at]
                return self._release(len(self.text)), True
        return self._release(max(self.released, len(self.text) - self._hold)), False

    def flush(self) -> str:
        """Everything not yet released (at the end of a sequence)."""
        self.text += self._decoder.decode(b"", final=True)
        return self._release(len(self.text))

    def _release(self, upto: int) -> str:
        delta = self.text[self.released : upto]
        self.released = max(self.released, upto)
        return delta
