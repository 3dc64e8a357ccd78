"""The plug-in's own help page, and the small windows it says things in (GIMP's status bar shows a
message for seconds, easily missed)."""

from __future__ import annotations

import os

import gi

gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
from gi.repository import GimpUi, Gio, GLib, Gtk  # noqa: E402

HELP_PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "impasto-help.html")


def open_help(parent: Gtk.Window) -> None:
    """The help page in the web browser; where none is set up to open it (or it fails), a window
    naming the page, whose path can be copied (a message to GIMP's status bar went unseen)."""
    if Gio.AppInfo.get_default_for_type("text/html", False) is not None:
        try:
            Gtk.show_uri_on_window(parent, Gio.File.new_for_path(HELP_PAGE).get_uri(), Gtk.get_current_event_time())
            return
        except GLib.Error:
            pass
    tell(parent, "Impasto Help", "No web browser is set up to open Impasto's help here.",
         f"Open this page in a browser:\n{HELP_PAGE}")


def tell(parent: Gtk.Window | None, title: str, text: str, more: str, problem: bool = False) -> None:
    """A small window over `parent` with `text` and `more` (selectable, so a path can be copied),
    closed by its button: what GIMP's status bar showed for seconds, easily missed."""
    message = Gtk.MessageDialog(transient_for=parent, modal=True, buttons=Gtk.ButtonsType.CLOSE, title=title,
                                message_type=Gtk.MessageType.ERROR if problem else Gtk.MessageType.INFO, text=text)
    message.format_secondary_text(more)
    for label in message.get_message_area().get_children():
        if isinstance(label, Gtk.Label):
            label.set_selectable(True)
    message.run()
    message.destroy()


def replace_help_button(dialog: GimpUi.ProcedureDialog) -> None:
    """GIMP's Help button asks for GIMP's manual ("not installed in your language"), for a page
    it does not have: in its place, one that opens the plug-in's own page."""
    gimp_help = dialog.get_widget_for_response(Gtk.ResponseType.HELP)
    if gimp_help is None:
        return
    ours = Gtk.Button.new_with_mnemonic("_Help")
    ours.connect("clicked", lambda _: open_help(dialog))
    box = gimp_help.get_parent()
    gimp_help.set_no_show_all(True)
    gimp_help.hide()
    box.add(ours)
    if isinstance(box, Gtk.ButtonBox):
        box.set_child_secondary(ours, True)
        box.reorder_child(ours, 0)
    ours.show()
