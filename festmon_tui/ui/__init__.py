"""The Textual dashboard; talks to the scheduler's service object, never to the database."""
