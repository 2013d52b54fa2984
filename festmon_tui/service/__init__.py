"""The application service every front end talks to: state, actions, changes."""
