from django import forms

from .models import Playlist, Screen


class ScreenForm(forms.ModelForm):
    class Meta:
        model = Screen
        fields = ["name", "location", "playlist"]

    def __init__(self, *args, account, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["playlist"].queryset = account.playlists.all()


class PlaylistForm(forms.ModelForm):
    class Meta:
        model = Playlist
        fields = ["name", "items"]
        widgets = {"items": forms.Textarea(attrs={"rows": 4, "placeholder": "https://..."})}
