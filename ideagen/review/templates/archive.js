(function () {
  function open(hash) {
    var target = hash && document.getElementById(hash.slice(1));
    if (target && target.tagName === 'DETAILS') { target.open = true; target.scrollIntoView(); }
  }
  document.querySelectorAll('#archive-grid td.niche[data-entry]').forEach(function (cell) {
    cell.addEventListener('click', function (event) {
      event.preventDefault();
      var link = event.target.closest('a[href^="#elite-"]');
      open(link ? link.getAttribute('href') : '#elite-' + cell.getAttribute('data-entry'));
    });
  });
  open(location.hash);
})();
