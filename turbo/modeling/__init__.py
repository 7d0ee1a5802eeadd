"""Loading models and tokenizers, special tokens, embedding initialisation, PEFT."""
